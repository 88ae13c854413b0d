//! Where runs and their tasks are kept: one repository trait, one implementation (`repository.rs`) compiled for
//! PostgreSQL and for SQLite, one conformance suite.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use highwind_common::db::{Database, DbError};
use sqlx::migrate::Migrator;
use uuid::Uuid;

use crate::{
    runs::entities::{Direction, LineageEdge, Run, State, Task, Values},
    serving::entities::DeploymentRecord,
};

mod pg;
mod sqlite;

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod deployment_conformance;

static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");

/// A storage failure; logged, never sent to clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored document does not decode.
    #[error("stored document {0} is corrupt: {1}")]
    Corrupt(String, String),
}

/// Which runs a list returns (always one creator's).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunQuery {
    /// The creator, e.g. `users/alice`.
    pub creator: String,
    /// Only runs in this state.
    pub state: Option<State>,
    /// Only runs of any version of this pipeline asset, `assets/{a}`.
    pub pipeline_asset: Option<String>,
    /// Only runs of this exact pipeline version.
    pub pipeline_version: Option<String>,
    /// Only runs on this backend (`LOCAL`, `KFP`).
    pub backend: Option<String>,
    /// Only runs created after (exclusive) this time.
    pub created_after: Option<DateTime<Utc>>,
    /// Only runs created before (exclusive) this time.
    pub created_before: Option<DateTime<Utc>>,
    /// Newest first.
    pub newest_first: bool,
    /// Resume after this (create time, id) in the list's order.
    pub after: Option<(DateTime<Utc>, Uuid)>,
    /// At most this many runs.
    pub limit: usize,
}

/// Persistence of runs and tasks.
#[async_trait]
pub trait RunRepository: Send + Sync + std::fmt::Debug {
    /// Inserts `run` with the IR it executes. When its creator already used its `request_id`, nothing is inserted
    /// and that run is returned instead.
    async fn create(&self, run: &Run, ir: &str) -> Result<Run, StoreError>;

    /// The run with `id`.
    async fn get(&self, id: Uuid) -> Result<Option<Run>, StoreError>;

    /// The IR YAML run `id` executes.
    async fn ir(&self, id: Uuid) -> Result<Option<String>, StoreError>;

    /// The tasks of run `id`, in the order they first appeared.
    async fn tasks(&self, id: Uuid) -> Result<Vec<Task>, StoreError>;

    /// Writes `run` and upserts `tasks` in one transaction if the stored run's sequence is still
    /// `expected_sequence`; false (nothing written) otherwise.
    async fn save(&self, run: &Run, tasks: &[Task], expected_sequence: i64) -> Result<bool, StoreError>;

    /// A page of runs.
    async fn list(&self, query: &RunQuery) -> Result<Vec<Run>, StoreError>;

    /// Ids of runs not in a terminal state, oldest first.
    async fn unfinished(&self) -> Result<Vec<Uuid>, StoreError>;

    /// Records that runs read or produced asset versions; recording an edge again changes nothing.
    async fn record_lineage(&self, edges: &[LineageEdge]) -> Result<(), StoreError>;

    /// The runs that read (`In`) or produced (`Out`) `asset_version`, oldest first, at most `limit`.
    async fn runs_touching(
        &self,
        asset_version: &str,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Uuid>, StoreError>;

    /// Every edge of run `id`.
    async fn lineage_of(&self, id: Uuid) -> Result<Vec<LineageEdge>, StoreError>;

    /// Remembers that task `task` of run `run` produced `outputs` for `creator` under `fingerprint`.
    async fn remember_outputs(
        &self,
        creator: &str,
        fingerprint: &str,
        run: Uuid,
        task: &str,
        outputs: &Values,
    ) -> Result<(), StoreError>;

    /// What `creator`'s tasks with `fingerprint` produced, newest first, at most `limit`: run, task and outputs.
    async fn cached_outputs(
        &self,
        creator: &str,
        fingerprint: &str,
        limit: usize,
    ) -> Result<Vec<(Uuid, String, Values)>, StoreError>;
}

fn direction(text: &str) -> Direction {
    if text == "OUT" { Direction::Out } else { Direction::In }
}

/// Connects the repository for `db`, after applying its migrations.
pub async fn open(db: Database) -> Result<Arc<dyn RunRepository>, DbError> {
    Ok(open_both(db).await?.0)
}

/// The migrated run and deployment repositories of `db`.
pub async fn open_both(db: Database) -> Result<(Arc<dyn RunRepository>, Arc<dyn DeploymentRepository>), DbError> {
    db.migrate(&POSTGRES_MIGRATIONS, &SQLITE_MIGRATIONS).await?;
    Ok(match db {
        Database::Postgres(pool) => (Arc::new(pg::Runs(pool.clone())), Arc::new(pg::Deployments(pool))),
        Database::Sqlite(pool) => (Arc::new(sqlite::Runs(pool.clone())), Arc::new(sqlite::Deployments(pool))),
    })
}

/// Persistence of deployments: what each runs, never its live status.
#[async_trait]
pub trait DeploymentRepository: Send + Sync + std::fmt::Debug {
    /// Stores a new deployment; false when its id is taken.
    async fn insert(&self, deployment: &DeploymentRecord) -> Result<bool, StoreError>;
    /// The deployment `id`.
    async fn get(&self, id: &str) -> Result<Option<DeploymentRecord>, StoreError>;
    /// A use case's deployments, newest first; every deployment, oldest first, when `use_case` is `None`.
    async fn list(&self, use_case: Option<&str>) -> Result<Vec<DeploymentRecord>, StoreError>;
    /// Removes `id`; false when it was not there.
    async fn delete(&self, id: &str) -> Result<bool, StoreError>;
}

fn encode<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn decode<T: serde::de::DeserializeOwned>(id: &str, doc: &str) -> Result<T, StoreError> {
    serde_json::from_str(doc).map_err(|e| StoreError::Corrupt(id.to_owned(), e.to_string()))
}
