//! The deployment repository, written once: `pg.rs` and `sqlite.rs` each compile this file against their own
//! `Db`, `Pool` and `begin_write`, as they do the run repository.

use async_trait::async_trait;
use highwind_common::db::DbTime;

use super::{Deployments, begin_write};
use crate::{
    serving::entities::DeploymentRecord,
    store::{DeploymentRepository, StoreError, decode, encode},
};

#[async_trait]
impl DeploymentRepository for Deployments {
    async fn insert(&self, deployment: &DeploymentRecord) -> Result<bool, StoreError> {
        let mut tx = begin_write(&self.0).await?;
        let inserted = sqlx::query(
            "INSERT INTO deployments (id, use_case, create_time, doc) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&deployment.id)
        .bind(&deployment.use_case)
        .bind(DbTime(deployment.create_time))
        .bind(encode(deployment))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(inserted.rows_affected() == 1)
    }

    async fn get(&self, id: &str) -> Result<Option<DeploymentRecord>, StoreError> {
        let doc: Option<String> =
            sqlx::query_scalar("SELECT doc FROM deployments WHERE id = $1").bind(id).fetch_optional(&self.0).await?;
        doc.map(|doc| decode(id, &doc)).transpose()
    }

    async fn list(&self, use_case: Option<&str>) -> Result<Vec<DeploymentRecord>, StoreError> {
        let rows: Vec<(String, String)> = match use_case {
            Some(use_case) => {
                sqlx::query_as("SELECT id, doc FROM deployments WHERE use_case = $1 ORDER BY create_time DESC, id DESC")
                    .bind(use_case)
                    .fetch_all(&self.0)
                    .await?
            }
            None => {
                sqlx::query_as("SELECT id, doc FROM deployments ORDER BY create_time, id").fetch_all(&self.0).await?
            }
        };
        rows.iter().map(|(id, doc)| decode(id, doc)).collect()
    }

    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = begin_write(&self.0).await?;
        let deleted = sqlx::query("DELETE FROM deployments WHERE id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(deleted.rows_affected() == 1)
    }
}
