//! SQLite grant outbox.

use async_trait::async_trait;

use super::{
    StoreError,
    outbox::{GrantOutbox, Pending},
    sqlite::SqliteUseCases,
};

#[async_trait]
impl GrantOutbox for SqliteUseCases {
    async fn pending(&self, after: Option<&str>, limit: usize) -> Result<Vec<Pending>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT source, version FROM grant_outbox WHERE pending AND (? IS NULL OR source > ?) \
                 ORDER BY source LIMIT ?",
        )
        .bind(after)
        .bind(after)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.0)
        .await?;
        Ok(rows.into_iter().map(|(source, version)| Pending { source, version }).collect())
    }

    async fn delivered(&self, pending: &Pending) -> Result<(), StoreError> {
        sqlx::query("UPDATE grant_outbox SET pending = FALSE WHERE source = ? AND version = ?")
            .bind(&pending.source)
            .bind(pending.version)
            .execute(&self.0)
            .await?;
        Ok(())
    }
}
