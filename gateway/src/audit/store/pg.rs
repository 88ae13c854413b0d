//! PostgreSQL: the one audit repository body, compiled against PostgreSQL.

pub(super) use highwind_common::db::postgres::{Db, Pool, begin_write};

/// Audit events in PostgreSQL.
#[derive(Debug)]
pub struct Audit(pub Pool);

// The same file is compiled once per backend on purpose: that is how both share one body.
#[allow(clippy::duplicate_mod)]
#[path = "repository.rs"]
mod repository;
