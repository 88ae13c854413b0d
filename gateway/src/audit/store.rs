//! Where audit events are kept, in the gateway's database.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use highwind_common::db::Database;
use sqlx::{Postgres, QueryBuilder, Sqlite};
use uuid::Uuid;

use super::AuditEvent;

/// Which events a list returns, newest first; all conditions hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only this principal's calls.
    pub principal: Option<String>,
    /// Only calls on this resource or anything under it (`useCases/u` covers `useCases/u/members/m`).
    pub target: Option<String>,
    /// Only calls that ended with this code.
    pub code: Option<String>,
    /// Older than this (microseconds, id).
    pub before: Option<(i64, Uuid)>,
    /// Page size; up to `limit + 1` are returned.
    pub limit: usize,
}

/// Persistence of audit events.
#[async_trait]
pub trait AuditStore: Send + Sync + std::fmt::Debug {
    /// Appends `events` in one transaction.
    async fn append(&self, events: &[AuditEvent]) -> Result<(), sqlx::Error>;
    /// The events `query` selects, newest first.
    async fn list(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, sqlx::Error>;
}

/// The audit store of the gateway's (migrated) database.
pub fn open(db: &Database) -> Arc<dyn AuditStore> {
    match db {
        Database::Postgres(pool) => Arc::new(PgAudit(pool.clone())),
        Database::Sqlite(pool) => Arc::new(SqliteAudit(pool.clone())),
    }
}

/// `target`'s range: itself, and everything named below it (`/` sorts just before `0`).
fn below(target: &str) -> (String, String) {
    (format!("{target}/"), format!("{target}0"))
}

#[derive(Debug)]
struct PgAudit(sqlx::PgPool);

#[async_trait]
impl AuditStore for PgAudit {
    async fn append(&self, events: &[AuditEvent]) -> Result<(), sqlx::Error> {
        let mut tx = self.0.begin().await?;
        for e in events {
            sqlx::query(
                "INSERT INTO audit_events (id, time, principal, method, target, code, trace_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(e.id)
            .bind(e.time)
            .bind(&e.principal)
            .bind(&e.method)
            .bind(&e.target)
            .bind(&e.code)
            .bind(&e.trace_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    async fn list(&self, q: &AuditQuery) -> Result<Vec<AuditEvent>, sqlx::Error> {
        let mut sql = QueryBuilder::<Postgres>::new(
            "SELECT id, time, principal, method, target, code, trace_id FROM audit_events WHERE TRUE",
        );
        if let Some(principal) = &q.principal {
            sql.push(" AND principal = ").push_bind(principal.clone());
        }
        if let Some(target) = &q.target {
            let (from, to) = below(target);
            sql.push(" AND (target = ").push_bind(target.clone());
            sql.push(" OR (target >= ").push_bind(from).push(" AND target < ").push_bind(to).push("))");
        }
        if let Some(code) = &q.code {
            sql.push(" AND code = ").push_bind(code.clone());
        }
        if let Some((micros, id)) = q.before {
            let time = DateTime::<Utc>::from_timestamp_micros(micros).unwrap_or_default();
            sql.push(" AND (time, id) < (").push_bind(time).push(", ").push_bind(id).push(")");
        }
        sql.push(" ORDER BY time DESC, id DESC LIMIT ").push_bind(i64::try_from(q.limit + 1).unwrap_or(i64::MAX));
        let rows: Vec<(Uuid, DateTime<Utc>, String, String, String, String, String)> =
            sql.build_query_as().fetch_all(&self.0).await?;
        Ok(rows
            .into_iter()
            .map(|(id, time, principal, method, target, code, trace_id)| AuditEvent {
                id,
                time,
                principal,
                method,
                target,
                code,
                trace_id,
            })
            .collect())
    }
}

#[derive(Debug)]
struct SqliteAudit(sqlx::SqlitePool);

#[async_trait]
impl AuditStore for SqliteAudit {
    async fn append(&self, events: &[AuditEvent]) -> Result<(), sqlx::Error> {
        let mut tx = self.0.begin_with("BEGIN IMMEDIATE").await?;
        for e in events {
            sqlx::query(
                "INSERT INTO audit_events (id, time_micros, principal, method, target, code, trace_id) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(e.id.to_string())
            .bind(e.time.timestamp_micros())
            .bind(&e.principal)
            .bind(&e.method)
            .bind(&e.target)
            .bind(&e.code)
            .bind(&e.trace_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    async fn list(&self, q: &AuditQuery) -> Result<Vec<AuditEvent>, sqlx::Error> {
        let mut sql = QueryBuilder::<Sqlite>::new(
            "SELECT id, time_micros, principal, method, target, code, trace_id FROM audit_events WHERE 1 = 1",
        );
        if let Some(principal) = &q.principal {
            sql.push(" AND principal = ").push_bind(principal.clone());
        }
        if let Some(target) = &q.target {
            let (from, to) = below(target);
            sql.push(" AND (target = ").push_bind(target.clone());
            sql.push(" OR (target >= ").push_bind(from).push(" AND target < ").push_bind(to).push("))");
        }
        if let Some(code) = &q.code {
            sql.push(" AND code = ").push_bind(code.clone());
        }
        if let Some((micros, id)) = q.before {
            sql.push(" AND (time_micros, id) < (").push_bind(micros).push(", ").push_bind(id.to_string()).push(")");
        }
        sql.push(" ORDER BY time_micros DESC, id DESC LIMIT ")
            .push_bind(i64::try_from(q.limit + 1).unwrap_or(i64::MAX));
        let rows: Vec<(String, i64, String, String, String, String, String)> =
            sql.build_query_as().fetch_all(&self.0).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, micros, principal, method, target, code, trace_id)| {
                Some(AuditEvent {
                    id: Uuid::try_parse(&id).ok()?,
                    time: DateTime::<Utc>::from_timestamp_micros(micros)?,
                    principal,
                    method,
                    target,
                    code,
                    trace_id,
                })
            })
            .collect())
    }
}
