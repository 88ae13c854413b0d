//! The run repository, written once: `pg.rs` and `sqlite.rs` each compile this file against their own `Db`,
//! `Pool` and `begin_write`. Ids and times go through `DbUuid` and `DbTime`, so both backends read the same SQL.

use async_trait::async_trait;
use highwind_common::db::{DbTime, DbUuid};
use sqlx::QueryBuilder;
use uuid::Uuid;

use super::{Db, Runs, begin_write};
use crate::{
    runs::entities::{Direction, LineageEdge, Run, Task, Values, now},
    store::{RunQuery, RunRepository, StoreError, decode, direction, encode},
};

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl RunRepository for Runs {
    async fn create(&self, run: &Run, ir: &str) -> Result<Run, StoreError> {
        let mut tx = begin_write(&self.0).await?;
        // An idempotency key holds for 24 hours: an older run lets go of it.
        sqlx::query("UPDATE runs SET request_id = NULL WHERE creator = $1 AND request_id = $2 AND create_time < $3")
            .bind(&run.creator)
            .bind(&run.request_id)
            .bind(DbTime(run.create_time - chrono::Duration::hours(24)))
            .execute(&mut *tx)
            .await?;
        let inserted = sqlx::query(
            "INSERT INTO runs (id, creator, pipeline_asset, pipeline_version, state, backend, create_time, \
             request_id, sequence, doc, ir) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (creator, request_id) WHERE request_id IS NOT NULL DO NOTHING",
        )
        .bind(DbUuid(run.id))
        .bind(&run.creator)
        .bind(run.pipeline_asset())
        .bind(&run.pipeline_version)
        .bind(run.state.as_str())
        .bind(run.backend.as_str())
        .bind(DbTime(run.create_time))
        .bind(&run.request_id)
        .bind(run.sequence)
        .bind(encode(run))
        .bind(ir)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 1 {
            tx.commit().await?;
            return Ok(run.clone());
        }
        let (id, doc): (DbUuid, String) =
            sqlx::query_as("SELECT id, doc FROM runs WHERE creator = $1 AND request_id = $2")
                .bind(&run.creator)
                .bind(&run.request_id)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        decode(&id.0.to_string(), &doc)
    }

    async fn get(&self, id: Uuid) -> Result<Option<Run>, StoreError> {
        let doc: Option<(String,)> =
            sqlx::query_as("SELECT doc FROM runs WHERE id = $1").bind(DbUuid(id)).fetch_optional(&self.0).await?;
        doc.map(|(doc,)| decode(&id.to_string(), &doc)).transpose()
    }

    async fn ir(&self, id: Uuid) -> Result<Option<String>, StoreError> {
        let ir: Option<(String,)> =
            sqlx::query_as("SELECT ir FROM runs WHERE id = $1").bind(DbUuid(id)).fetch_optional(&self.0).await?;
        Ok(ir.map(|(ir,)| ir))
    }

    async fn tasks(&self, id: Uuid) -> Result<Vec<Task>, StoreError> {
        let docs: Vec<(String,)> = sqlx::query_as("SELECT doc FROM tasks WHERE run_id = $1 ORDER BY position")
            .bind(DbUuid(id))
            .fetch_all(&self.0)
            .await?;
        docs.iter().map(|(doc,)| decode(&id.to_string(), doc)).collect()
    }

    async fn save(&self, run: &Run, tasks: &[Task], expected_sequence: i64) -> Result<bool, StoreError> {
        let mut tx = begin_write(&self.0).await?;
        let updated =
            sqlx::query("UPDATE runs SET state = $2, sequence = $3, doc = $4 WHERE id = $1 AND sequence = $5")
                .bind(DbUuid(run.id))
                .bind(run.state.as_str())
                .bind(run.sequence)
                .bind(encode(run))
                .bind(expected_sequence)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if updated != 1 {
            return Ok(false);
        }
        for task in tasks {
            sqlx::query(
                "INSERT INTO tasks (run_id, path, position, doc) \
                 VALUES ($1, $2, (SELECT COUNT(*) FROM tasks WHERE run_id = $1), $3) \
                 ON CONFLICT (run_id, path) DO UPDATE SET doc = EXCLUDED.doc",
            )
            .bind(DbUuid(run.id))
            .bind(&task.path)
            .bind(encode(task))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn list(&self, query: &RunQuery) -> Result<Vec<Run>, StoreError> {
        let mut sql = QueryBuilder::<Db>::new("SELECT id, doc FROM runs WHERE creator = ");
        sql.push_bind(&query.creator);
        if let Some(state) = query.state {
            sql.push(" AND state = ").push_bind(state.as_str());
        }
        if let Some(asset) = &query.pipeline_asset {
            sql.push(" AND pipeline_asset = ").push_bind(asset);
        }
        if let Some(version) = &query.pipeline_version {
            sql.push(" AND pipeline_version = ").push_bind(version);
        }
        if let Some(backend) = &query.backend {
            sql.push(" AND backend = ").push_bind(backend);
        }
        if let Some(after) = query.created_after {
            sql.push(" AND create_time > ").push_bind(DbTime(after));
        }
        if let Some(before) = query.created_before {
            sql.push(" AND create_time < ").push_bind(DbTime(before));
        }
        let (cmp, order) = if query.newest_first { ("<", "DESC") } else { (">", "ASC") };
        if let Some((time, id)) = query.after {
            sql.push(format!(" AND (create_time, id) {cmp} ("))
                .push_bind(DbTime(time))
                .push(", ")
                .push_bind(DbUuid(id))
                .push(")");
        }
        sql.push(format!(" ORDER BY create_time {order}, id {order} LIMIT ")).push_bind(limit(query.limit));
        let rows: Vec<(DbUuid, String)> = sql.build_query_as().fetch_all(&self.0).await?;
        rows.iter().map(|(id, doc)| decode(&id.0.to_string(), doc)).collect()
    }

    async fn unfinished(&self) -> Result<Vec<Uuid>, StoreError> {
        let rows: Vec<(DbUuid,)> = sqlx::query_as(
            "SELECT id FROM runs WHERE state IN ('PENDING', 'RUNNING', 'CANCELING') ORDER BY create_time, id",
        )
        .fetch_all(&self.0)
        .await?;
        Ok(rows.into_iter().map(|(id,)| id.0).collect())
    }

    async fn record_lineage(&self, edges: &[LineageEdge]) -> Result<(), StoreError> {
        let mut tx = begin_write(&self.0).await?;
        for edge in edges {
            sqlx::query(
                "INSERT INTO run_lineage (run_id, asset_version, direction, port, artifact_type) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(DbUuid(edge.run_id))
            .bind(&edge.asset_version)
            .bind(edge.direction.as_str())
            .bind(&edge.port)
            .bind(&edge.artifact_type)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn runs_touching(
        &self,
        asset_version: &str,
        direction: Direction,
        limit_to: usize,
    ) -> Result<Vec<Uuid>, StoreError> {
        let rows: Vec<(DbUuid,)> = sqlx::query_as(
            "SELECT DISTINCT l.run_id, r.create_time FROM run_lineage l JOIN runs r ON r.id = l.run_id \
             WHERE l.asset_version = $1 AND l.direction = $2 ORDER BY r.create_time, l.run_id LIMIT $3",
        )
        .bind(asset_version)
        .bind(direction.as_str())
        .bind(limit(limit_to))
        .fetch_all(&self.0)
        .await?;
        Ok(rows.into_iter().map(|(run_id,)| run_id.0).collect())
    }

    async fn lineage_of(&self, id: Uuid) -> Result<Vec<LineageEdge>, StoreError> {
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT asset_version, direction, port, artifact_type FROM run_lineage WHERE run_id = $1 \
             ORDER BY direction, port, asset_version",
        )
        .bind(DbUuid(id))
        .fetch_all(&self.0)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(asset_version, dir, port, artifact_type)| LineageEdge {
                run_id: id,
                asset_version,
                direction: direction(&dir),
                port,
                artifact_type,
            })
            .collect())
    }

    async fn remember_outputs(
        &self,
        creator: &str,
        fingerprint: &str,
        run: Uuid,
        task: &str,
        outputs: &Values,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO task_cache (creator, fingerprint, run_id, task_path, outputs, create_time) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(creator)
        .bind(fingerprint)
        .bind(DbUuid(run))
        .bind(task)
        .bind(encode(outputs))
        .bind(DbTime(now()))
        .execute(&self.0)
        .await?;
        Ok(())
    }

    async fn cached_outputs(
        &self,
        creator: &str,
        fingerprint: &str,
        limit_to: usize,
    ) -> Result<Vec<(Uuid, String, Values)>, StoreError> {
        let rows: Vec<(DbUuid, String, String)> = sqlx::query_as(
            "SELECT run_id, task_path, outputs FROM task_cache WHERE creator = $1 AND fingerprint = $2 \
             ORDER BY create_time DESC LIMIT $3",
        )
        .bind(creator)
        .bind(fingerprint)
        .bind(limit(limit_to))
        .fetch_all(&self.0)
        .await?;
        rows.into_iter().map(|(run, task, outputs)| Ok((run.0, task, decode(&run.0.to_string(), &outputs)?))).collect()
    }
}
