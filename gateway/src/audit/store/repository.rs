//! The audit repository, written once: `pg.rs` and `sqlite.rs` each compile this file against their own `Db`,
//! `Pool` and `begin_write`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use highwind_common::db::{DbTime, DbUuid};
use sqlx::QueryBuilder;

use super::{Audit, Db, begin_write};
use crate::audit::{
    AuditEvent,
    store::{AuditQuery, AuditStore, EventRow, below},
};

#[async_trait]
impl AuditStore for Audit {
    async fn append(&self, events: &[AuditEvent]) -> Result<(), sqlx::Error> {
        let mut tx = begin_write(&self.0).await?;
        for e in events {
            sqlx::query(
                "INSERT INTO audit_events (id, time, principal, method, target, code, trace_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(DbUuid(e.id))
            .bind(DbTime(e.time))
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
        let mut sql = QueryBuilder::<Db>::new(
            "SELECT id, time, principal, method, target, code, trace_id FROM audit_events WHERE 1 = 1",
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
            sql.push(" AND (time, id) < (").push_bind(DbTime(time)).push(", ").push_bind(DbUuid(id)).push(")");
        }
        sql.push(" ORDER BY time DESC, id DESC LIMIT ").push_bind(i64::try_from(q.limit + 1).unwrap_or(i64::MAX));
        let rows: Vec<EventRow> = sql.build_query_as().fetch_all(&self.0).await?;
        Ok(rows.into_iter().map(AuditEvent::from).collect())
    }
}
