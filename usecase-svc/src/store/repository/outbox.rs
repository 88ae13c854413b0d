//! The grant outbox.

use async_trait::async_trait;

use super::super::UseCases;
use crate::store::{
    StoreError,
    outbox::{GrantOutbox, Pending},
};

#[async_trait]
impl GrantOutbox for UseCases {
    async fn pending(&self, after: Option<&str>, limit: usize) -> Result<Vec<Pending>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT source, version FROM grant_outbox WHERE pending AND ($1 IS NULL OR source > $1) \
             ORDER BY source LIMIT $2",
        )
        .bind(after)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.0)
        .await?;
        Ok(rows.into_iter().map(|(source, version)| Pending { source, version }).collect())
    }

    async fn delivered(&self, pending: &Pending) -> Result<(), StoreError> {
        sqlx::query("UPDATE grant_outbox SET pending = FALSE WHERE source = $1 AND version = $2")
            .bind(&pending.source)
            .bind(pending.version)
            .execute(&self.0)
            .await?;
        Ok(())
    }
}
