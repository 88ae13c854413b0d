//! PostgreSQL: the one repository body, compiled against PostgreSQL.

pub(super) use highwind_common::db::postgres::{Db, Pool, begin_write};

/// Runs in PostgreSQL.
#[derive(Debug, Clone)]
pub struct Runs(pub Pool);

/// Deployments in PostgreSQL.
#[derive(Debug, Clone)]
pub struct Deployments(pub Pool);

// The same files are compiled once per backend on purpose: that is how both share one body.
#[allow(clippy::duplicate_mod)]
#[path = "repository.rs"]
mod repository;

#[allow(clippy::duplicate_mod)]
#[path = "deployments.rs"]
mod deployments;
