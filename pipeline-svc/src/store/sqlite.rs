//! SQLite. Ids are text and times integer microseconds.

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite, SqlitePool};
use uuid::Uuid;

use super::{RunQuery, RunRepository, StoreError, decode, direction, encode};
use crate::runs::model::{Direction, LineageEdge, Run, Task, Values};

/// Runs in SQLite. Ids are text and times integer microseconds.
#[derive(Debug, Clone)]
pub struct SqliteRuns(pub SqlitePool);

#[async_trait]
impl RunRepository for SqliteRuns {
    async fn create(&self, run: &Run, ir: &str) -> Result<Run, StoreError> {
        // An idempotency key holds for 24 hours: an older run lets go of it.
        sqlx::query("UPDATE runs SET request_id = NULL WHERE creator = $1 AND request_id = $2 AND create_time < $3")
            .bind(&run.creator)
            .bind(&run.request_id)
            .bind((run.create_time - chrono::Duration::hours(24)).timestamp_micros())
            .execute(&self.0)
            .await?;
        let inserted = sqlx::query(
            "INSERT INTO runs (id, creator, pipeline_asset, pipeline_version, state, backend, create_time, \
             request_id, sequence, doc, ir) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (creator, request_id) WHERE request_id IS NOT NULL DO NOTHING",
        )
        .bind(run.id.to_string())
        .bind(&run.creator)
        .bind(run.pipeline_asset())
        .bind(&run.pipeline_version)
        .bind(run.state.as_str())
        .bind(run.backend.as_str())
        .bind(run.create_time.timestamp_micros())
        .bind(&run.request_id)
        .bind(run.sequence)
        .bind(encode(run))
        .bind(ir)
        .execute(&self.0)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(run.clone());
        }
        let doc: (String, String) = sqlx::query_as("SELECT id, doc FROM runs WHERE creator = $1 AND request_id = $2")
            .bind(&run.creator)
            .bind(&run.request_id)
            .fetch_one(&self.0)
            .await?;
        decode(&doc.0, &doc.1)
    }

    async fn get(&self, id: Uuid) -> Result<Option<Run>, StoreError> {
        let doc: Option<(String,)> =
            sqlx::query_as("SELECT doc FROM runs WHERE id = $1").bind(id.to_string()).fetch_optional(&self.0).await?;
        doc.map(|(doc,)| decode(&id.to_string(), &doc)).transpose()
    }

    async fn ir(&self, id: Uuid) -> Result<Option<String>, StoreError> {
        let ir: Option<(String,)> =
            sqlx::query_as("SELECT ir FROM runs WHERE id = $1").bind(id.to_string()).fetch_optional(&self.0).await?;
        Ok(ir.map(|(ir,)| ir))
    }

    async fn tasks(&self, id: Uuid) -> Result<Vec<Task>, StoreError> {
        let docs: Vec<(String,)> = sqlx::query_as("SELECT doc FROM tasks WHERE run_id = $1 ORDER BY position")
            .bind(id.to_string())
            .fetch_all(&self.0)
            .await?;
        docs.iter().map(|(doc,)| decode(&id.to_string(), doc)).collect()
    }

    async fn save(&self, run: &Run, tasks: &[Task], expected_sequence: i64) -> Result<bool, StoreError> {
        let mut tx = self.0.begin().await?;
        let updated =
            sqlx::query("UPDATE runs SET state = $2, sequence = $3, doc = $4 WHERE id = $1 AND sequence = $5")
                .bind(run.id.to_string())
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
            .bind(run.id.to_string())
            .bind(&task.path)
            .bind(encode(task))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn list(&self, query: &RunQuery) -> Result<Vec<Run>, StoreError> {
        let mut sql = QueryBuilder::<Sqlite>::new("SELECT id, doc FROM runs WHERE creator = ");
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
            sql.push(" AND create_time > ").push_bind(after.timestamp_micros());
        }
        if let Some(before) = query.created_before {
            sql.push(" AND create_time < ").push_bind(before.timestamp_micros());
        }
        let (cmp, order) = if query.newest_first { ("<", "DESC") } else { (">", "ASC") };
        if let Some((time, id)) = query.after {
            sql.push(format!(" AND (create_time, id) {cmp} ("))
                .push_bind(time.timestamp_micros())
                .push(", ")
                .push_bind(id.to_string())
                .push(")");
        }
        sql.push(format!(" ORDER BY create_time {order}, id {order} LIMIT "))
            .push_bind(i64::try_from(query.limit).unwrap_or(i64::MAX));
        let rows: Vec<(String, String)> = sql.build_query_as().fetch_all(&self.0).await?;
        rows.iter().map(|(id, doc)| decode(id, doc)).collect()
    }

    async fn unfinished(&self) -> Result<Vec<Uuid>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT id FROM runs WHERE state IN ('PENDING', 'RUNNING', 'CANCELING') ORDER BY create_time, id",
        )
        .fetch_all(&self.0)
        .await?;
        rows.into_iter()
            .map(|(id,)| Uuid::parse_str(&id).map_err(|e| StoreError::Corrupt(id.clone(), e.to_string())))
            .collect()
    }

    async fn record_lineage(&self, edges: &[LineageEdge]) -> Result<(), StoreError> {
        let mut tx = self.0.begin().await?;
        for edge in edges {
            sqlx::query(
                "INSERT INTO run_lineage (run_id, asset_version, direction, port, artifact_type) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(edge.run_id.to_string())
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
        limit: usize,
    ) -> Result<Vec<Uuid>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT DISTINCT l.run_id, r.create_time FROM run_lineage l JOIN runs r ON r.id = l.run_id \
             WHERE l.asset_version = $1 AND l.direction = $2 ORDER BY r.create_time, l.run_id LIMIT $3",
        )
        .bind(asset_version)
        .bind(direction.as_str())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.0)
        .await?;
        rows.into_iter()
            .map(|(run_id,)| Uuid::parse_str(&run_id).map_err(|e| StoreError::Corrupt(run_id.clone(), e.to_string())))
            .collect()
    }

    async fn lineage_of(&self, id: Uuid) -> Result<Vec<LineageEdge>, StoreError> {
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT asset_version, direction, port, artifact_type FROM run_lineage WHERE run_id = $1 \
             ORDER BY direction, port, asset_version",
        )
        .bind(id.to_string())
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
        .bind(run.to_string())
        .bind(task)
        .bind(encode(outputs))
        .bind(crate::runs::model::now().timestamp_micros())
        .execute(&self.0)
        .await?;
        Ok(())
    }

    async fn cached_outputs(
        &self,
        creator: &str,
        fingerprint: &str,
        limit: usize,
    ) -> Result<Vec<(Uuid, String, Values)>, StoreError> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT run_id, task_path, outputs FROM task_cache WHERE creator = $1 AND fingerprint = $2 \
             ORDER BY create_time DESC LIMIT $3",
        )
        .bind(creator)
        .bind(fingerprint)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.0)
        .await?;
        rows.into_iter()
            .map(|(run, task, outputs)| {
                let id = Uuid::parse_str(&run).map_err(|e| StoreError::Corrupt(run.clone(), e.to_string()))?;
                Ok((id, task, decode(&run, &outputs)?))
            })
            .collect()
    }
}
