//! Where audit events are kept, in the gateway's database: one implementation (`repository.rs`) compiled for
//! PostgreSQL and for SQLite.

use std::sync::Arc;

use async_trait::async_trait;
use highwind_common::db::{Database, DbTime, DbUuid};
use uuid::Uuid;

#[cfg(test)]
mod conformance;
mod pg;
mod sqlite;

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
        Database::Postgres(pool) => Arc::new(pg::Audit(pool.clone())),
        Database::Sqlite(pool) => Arc::new(sqlite::Audit(pool.clone())),
    }
}

/// `target`'s range: itself, and everything named below it (`/` sorts just before `0`).
fn below(target: &str) -> (String, String) {
    (format!("{target}/"), format!("{target}0"))
}

/// An `audit_events` row.
#[derive(sqlx::FromRow)]
struct EventRow {
    id: DbUuid,
    time: DbTime,
    principal: String,
    method: String,
    target: String,
    code: String,
    trace_id: String,
}

impl From<EventRow> for AuditEvent {
    fn from(row: EventRow) -> Self {
        let EventRow { id, time, principal, method, target, code, trace_id } = row;
        Self { id: id.0, time: time.0, principal, method, target, code, trace_id }
    }
}
